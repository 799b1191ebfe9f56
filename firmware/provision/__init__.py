"""`timeout-hub provision`: the installer's guided, resumable set-up of one household (issue 15,
item 3; docs/provision.md)."""
