"""seatlink host side: every gateway and central-service role, one subcommand each."""

__version__ = "0.1.0"
