#!/usr/bin/env python3
"""docker-py (Debian's python3-docker) against the daemon at DOCKER_HOST.

Prints one line per check; exits non-zero at the first failure."""
import sys
import time

import docker


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (": " + repr(detail) if not ok else ""))
    if not ok:
        sys.exit(1)


client = docker.from_env()
version = client.version()
check("version has ApiVersion", "ApiVersion" in version, version)
check("ping", client.ping() is True)

out = client.containers.run("busybox", "echo hi", remove=True)
check("run echo hi", out == b"hi\n", out)

c = client.containers.run(
    "busybox", ["sh", "-c", "echo up; exec sleep 300"], detach=True, name="pyc"
)
check("run detach returns a container", c.id and len(c.id) == 64, c.id)
c.reload()
check("detached container running", c.status == "running", c.status)

for _ in range(100):
    logs = c.logs()
    if logs:
        break
    time.sleep(0.1)  # bounded polling for output the container writes in its own time
check("logs", logs == b"up\n", logs)

code, output = c.exec_run(["sh", "-c", "echo out; exit 4"])
check("exec_run exit code", code == 4, code)
check("exec_run output", output == b"out\n", output)

c.stop(timeout=2)
result = c.wait()
check("wait after stop", isinstance(result, dict) and "StatusCode" in result, result)
c.reload()
check("stopped container exited", c.status == "exited", c.status)
c.remove()
names = [x.name for x in client.containers.list(all=True)]
check("removed", "pyc" not in names, names)

tags = [t for i in client.images.list() for t in i.tags]
check("images.list has busybox:latest", "busybox:latest" in tags, tags)

net = client.networks.create("pynet")
check("networks.create", net.id and "pynet" in [n.name for n in client.networks.list()], net.id)
net.remove()
check("networks.remove", "pynet" not in [n.name for n in client.networks.list()])

vol = client.volumes.create("pyvol")
check("volumes.create", vol.name == "pyvol" and "pyvol" in [v.name for v in client.volumes.list()])
vol.remove()
check("volumes.remove", "pyvol" not in [v.name for v in client.volumes.list()])

print("all checks passed")
