__version__ = "0.1.0"


def version_line() -> str:
    """What `hfget --version` prints."""
    return f"hfget {__version__}"
