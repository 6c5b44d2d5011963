"""nbgrader's settings for every single-user server of the course's JupyterHub (`python3 dev.py hub`).

The hub puts this folder on JUPYTER_CONFIG_PATH for every server, so nbgrader reads this file in each
server: its lab extensions (Assignments, Formgrader) and its command line run in a kernel or terminal
there. A course folder's own nbgrader_config.py (written by `python3 dev.py grade-course`) is read after
this one when nbgrader runs inside that folder, and sets the course root, the gradebook and graded mode.

On this hub every server runs as the same system user (root in the tests and the benchmark), so nbgrader
cannot tell students apart by their login name: each server's JupyterHub user name is its student id.
"""
import os

c = get_config()  # noqa: F821 (nbgrader and Jupyter define it)

COURSE_ID = "vae-lesson"  # the course_id of the course folder's nbgrader_config.py (tools/nbgrader_course.py)
# The instructors' hub user names: their servers hold the course folder and act for every student.
INSTRUCTORS = {n.strip() for n in os.environ.get("VAE_LESSON_INSTRUCTORS", "instructor").split(",") if n.strip()}

user = os.environ.get("JUPYTERHUB_USER")  # set by JupyterHub for every server it spawns

# The exchange: one folder that every server reads and writes (the hub's state folder/exchange).
if os.environ.get("NBGRADER_EXCHANGE"):
    c.Exchange.root = os.environ["NBGRADER_EXCHANGE"]
c.CourseDirectory.course_id = COURSE_ID

if user and user not in INSTRUCTORS:
    # A student: what they fetch, submit and fetch feedback for is recorded under their hub name
    # (nbgrader would otherwise use the system login, the same for everyone here).
    c.CourseDirectory.student_id = user
else:
    # The instructor: collect, release_feedback and the gradebook act for every student.
    c.CourseDirectory.student_id = "*"

# collect would warn that every submission is owned by the server's system user, not by the student
# it is filed under; on this hub that is expected.
c.CollectApp.check_owner = False

# In a real multi-user deployment (TLJH, Zero to JupyterHub, or a SystemdSpawner / SudoSpawner hub),
# every student's server runs as their own system user. Then remove the two student_id lines and
# check_owner above: nbgrader takes the student id from the login name and checks that each
# submission belongs to its student. The exchange root must exist on a file system that every
# server mounts (on Kubernetes a shared volume, ReadWriteMany), with mode 0777 and the sticky bit
# (`install -d -m 1777 /srv/nbgrader/exchange`); its course folder inside is made by the instructor's
# first `nbgrader release_assignment`. With several courses on one hub, give each its course_id and
# list who may take which course (c.Authenticator.plugin_class, e.g. nbgrader's JupyterHubAuthPlugin
# with the hub's groups `nbgrader-<course_id>`) instead of letting every user fetch every assignment.
