"""Course notebooks: instructors publish a folder or git repository for a course group; students get it.

Hub side (runs in the hub, as root, but never touches instructor content itself):

- :mod:`.rbac`       JupyterHub roles: a course's instructors may open the servers of that course's students
- :mod:`.publish`    "publish this folder": starts the reader and the writer below and waits for them
- :mod:`.reader`     the reading side of a publish, running as the instructor: regular files only
- :mod:`.writer`     the writing side, running as the course service account: a commit via git fast-import
- :mod:`.stream`     the format between the two, and the rules the writer enforces on it
- :mod:`.handlers`   the hub API endpoint instructors call, and the home page's course list
- :mod:`.page`       the course page (/hub/courses/<slug>): students' servers, open / stop, published versions
- :mod:`.history`    a course's published versions, read by git running as the course service account

Server side: the course pull, a jupyter-server extension in every student's server, lives with the
rest of what runs in a user's server, in :mod:`condorhub.lab.courses` (labextension/courses/).
"""
