"""Course notebooks: instructors publish a folder or git repository for a course group; students get it.

- :mod:`.model`    the site file's ``courses`` section
- :mod:`.rbac`     JupyterHub roles: a course's instructors may open the servers of that course's students
- :mod:`.publish`  the hub side of "publish this folder": a snapshot into the course's git repository
- :mod:`.handlers` the hub API endpoint instructors call, and the home page's course list
- :mod:`.sync`     the single-user side: at server start, pull each course into the student's home with
                   nbgitpuller's merge rules (a student's edited file is never overwritten)
"""
