"""`make bench`: figures beside their targets, each against a baseline measured in the same run."""
