"""The web console: the page and its files, served by the control API (`assets`); its data comes from the API."""
