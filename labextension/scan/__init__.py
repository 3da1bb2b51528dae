"""Parameter-scan browser, server side: walk a folder, match a regular expression with named groups over
the relative paths, and turn the groups into parameter axes (see ``match.scan``)."""
