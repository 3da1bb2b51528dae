"""Jobs and parameter scans from the Lab (issue 12): the REST API under {base_url}condorhub/api/jobs/ and
/scans/, run inside the user's own server with the user's own HTCondor credential (CONDOR_CONFIG)."""
