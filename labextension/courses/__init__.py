"""The course pull: the part of courses that runs inside every student's server (login node and HTCondor
job alike), a jupyter-server extension of its own (enabled by the installed
``jupyter_server_config.d/condorhub-courses.json``).

- :mod:`.sync`       the extension: confines course links, pulls courses once the server listens
- :mod:`.background` the pulls (nbgitpuller's merge: a student's edited file is never overwritten) and
                     their state endpoint
- :mod:`.links`      nbgitpuller's ``/git-pull`` may only write into ``~/courses/``
- :mod:`.publish`    the Lab's *Publish to course…*: the preview (as the user) and the publish, forwarded
                     to the hub with the server's own token (:mod:`.hubapi`)

The hub side (publishing, the course roles, the environment the hub passes) is :mod:`condorhub.courses`.
"""
