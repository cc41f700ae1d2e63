"""One module per ``busshare`` subcommand (see cli.py for the contract)."""
