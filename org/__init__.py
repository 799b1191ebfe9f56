"""The care organisation's side: opens the consented summaries, keeps them, shows the reports
(docs/care.md). Runs on the organisation's server, never on a hub."""
