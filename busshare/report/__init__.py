"""What the commands show: the JSON records every command shares and their schemas (docs/JSON.md)."""
