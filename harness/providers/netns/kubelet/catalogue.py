"""The image catalogue: every image the netns kubelet can run, and what really runs (data).

There is no container runtime. An image is one row here: the real program behind it
(a project console script, an upstream program built by ``harness.upstream``, or a
Debian program installed by ``./run``), the image's ENTRYPOINT, CMD, WORKDIR and
PATH, and the paths the image has that its users rely on, bound into the container's
private mount namespace. Rules:
- never a silent substitute: an image not in :data:`CATALOGUE` fails the pod, and so
  does an image whose real program is missing (with how to get it);
- the tag is not honoured: every tag of a repository runs the one pinned/installed
  build (the README says which);
- sources are symbolic and resolved by the kubelet (:mod:`images`):
  ``bin:NAME`` a console script in the kubelet's bin dir, ``upstream:COMPONENT[/PATH]``
  a built upstream component's directory, ``generated:NAME`` a directory this module
  describes (:data:`GENERATED`), written once under the kubelet's state dir;
- writable paths get a fresh, world-writable directory per container start (what an
  image's own writable layer gave the program: logs, pid and temp files).
"""

from __future__ import annotations

from dataclasses import dataclass

#: the PATH of a typical Linux image.
IMAGE_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


@dataclass(frozen=True)
class ImagePath:
    """A path the image has (``target``), provided by ``source`` (see module rules)."""

    target: str
    source: str
    kind: str = "dir"  # "dir" | "file"


@dataclass(frozen=True)
class ImageEntry:
    """One image: its real program and the parts of the image config Kubernetes uses."""

    repository: str
    #: what really runs, for the README and for error messages.
    runs: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    workdir: str = "/"
    #: PATH directories, in order; the kubelet's bin dir is used by project images only.
    path: tuple[str, ...] = IMAGE_PATH
    paths: tuple[ImagePath, ...] = ()
    writable: tuple[str, ...] = ()
    #: host programs that must exist for the image to run (Debian packages from ./run).
    needs: tuple[str, ...] = ()
    #: project images run the kubelet's own console scripts with its bin dir on PATH.
    project: bool = False


#: Debian's network tools: what users of busybox/alpine/netshoot/curl images call.
NET_TOOLS = ("/bin/sh", "/usr/bin/curl", "/usr/bin/nslookup", "/usr/bin/dig", "/usr/bin/nc")

CATALOGUE: tuple[ImageEntry, ...] = (
    ImageEntry(
        "isthmus/isthmus",
        "the project's `isthmus` console script (mesh control plane, proxy, CLI)",
        entrypoint=("isthmus",),
        project=True,
    ),
    ImageEntry(
        "isthmus/testapps",
        "the project's `isthmus-testapp` console script",
        entrypoint=("isthmus-testapp",),
        project=True,
    ),
    ImageEntry(
        "stefanprodan/podinfo",
        "podinfo and podcli built from the pinned upstream Go module (clusters/podinfo)",
        cmd=("./podinfo",),
        workdir="/home/app",
        paths=(
            ImagePath("/home/app", "upstream:podinfo"),
            ImagePath("/usr/local/bin/podcli", "upstream:podinfo/podcli", "file"),
        ),
    ),
    ImageEntry(
        "nginx",
        "Debian's nginx (`nginx -g 'daemon off;'`) with the image's /etc/nginx layout "
        "(nginx.conf including conf.d/*.conf, default.conf serving /usr/share/nginx/html "
        "on port 80)",
        cmd=("nginx", "-g", "daemon off;"),
        paths=(
            ImagePath("/etc/nginx", "generated:nginx-etc"),
            ImagePath("/usr/share/nginx/html", "generated:nginx-html"),
        ),
        writable=("/var/log/nginx", "/var/lib/nginx", "/var/cache/nginx"),
        needs=("/usr/sbin/nginx",),
    ),
    ImageEntry(
        "busybox",
        "Debian's userland: /bin/sh, coreutils, busybox, curl, nslookup/dig, nc, socat",
        cmd=("sh",),
        needs=(*NET_TOOLS, "/usr/bin/busybox"),
    ),
    ImageEntry(
        "alpine",
        "Debian's userland: /bin/sh, coreutils, busybox, curl, nslookup/dig, nc, socat",
        cmd=("/bin/sh",),
        needs=NET_TOOLS,
    ),
    ImageEntry(
        "curlimages/curl",
        "Debian's curl behind the image's entry point (`curl` unless the first "
        "argument is a program)",
        entrypoint=("/entrypoint.sh",),
        cmd=("curl",),
        paths=(ImagePath("/entrypoint.sh", "generated:curl-entrypoint/entrypoint.sh", "file"),),
        needs=("/usr/bin/curl",),
    ),
    ImageEntry(
        "nicolaka/netshoot",
        "Debian's zsh, curl, nslookup/dig, nc, socat, ip, ss",
        cmd=("zsh",),
        needs=(*NET_TOOLS, "/usr/bin/socat", "/usr/bin/zsh"),
    ),
    ImageEntry(
        "buoyantio/bb",
        "the project's `bb` (mesh.testapps.bb): bb's flags, wire format and log lines",
        entrypoint=("/out/bb",),
        paths=(ImagePath("/out", "generated:bb"),),
    ),
    ImageEntry(
        "buoyantio/slow_cooker",
        "the project's `slow_cooker` (mesh.testapps.slow_cooker): slow_cooker's flags, "
        "load and report lines",
        entrypoint=("/slow_cooker/slow_cooker",),
        path=("/slow_cooker", *IMAGE_PATH),
        paths=(ImagePath("/slow_cooker", "generated:slow_cooker"),),
    ),
)

#: Generated image directories: relative path -> content. ``@symlink:T`` makes a
#: symlink to ``T``, ``@copy:P`` copies host file ``P``; ``{bin}`` is the bin dir.
#: Files are 0644 unless their name ends in ``.sh`` or they are symlinks.
GENERATED: dict[str, dict[str, str]] = {
    "nginx-etc": {
        "nginx.conf": """\
user  www-data;
worker_processes  auto;

error_log  /dev/stderr notice;
pid        /var/lib/nginx/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /dev/stdout  main;

    sendfile        on;
    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
""",
        "conf.d/default.conf": """\
server {
    listen       80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
""",
        "mime.types": "@copy:/etc/nginx/mime.types",
    },
    "nginx-html": {
        "index.html": "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n"
        "<body><h1>Welcome to nginx!</h1></body></html>\n",
        "50x.html": "<!DOCTYPE html>\n<html><head><title>Error</title></head>\n"
        "<body><h1>An error occurred.</h1></body></html>\n",
    },
    "curl-entrypoint": {
        # The image's rule: run curl unless the first argument names a program.
        "entrypoint.sh": """\
#!/bin/sh
set -e
case "$1" in
  -*) set -- curl "$@" ;;
  *) command -v "$1" >/dev/null 2>&1 || set -- curl "$@" ;;
esac
exec "$@"
""",
    },
    "bb": {"bb": "@symlink:{bin}/bb"},
    "slow_cooker": {"slow_cooker": "@symlink:{bin}/slow_cooker"},
}


def find(repository: str) -> ImageEntry | None:
    for entry in CATALOGUE:
        if entry.repository == repository:
            return entry
    return None
