"""Defender IP enrichment: a SOAR plugin that enriches IPs with Microsoft Defender for Endpoint prevalence."""

__version__ = "0.1.0"
