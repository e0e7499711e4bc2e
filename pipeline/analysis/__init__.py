"""Analyses of a finished sweep (the `analyze` entry point): the paper's figures beyond Fig. 2, drawn from
what the sweep's runs tracked, each logged to a run of its own nested under the sweep."""
