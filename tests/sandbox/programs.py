"""Source code the Docker tests run: hello world with stdin in every language, and attacks."""

from __future__ import annotations

from syncrox.sandbox.model import Language

HELLO: dict[Language, bytes] = {
    Language.PYTHON: b"import sys\nname = sys.stdin.readline().strip()\nprint(f'hello {name}')\n",
    Language.C: (
        b"#include <stdio.h>\n"
        b"int main(void) {\n"
        b'    char name[64] = "";\n'
        b'    if (scanf("%63s", name) != 1) return 2;\n'
        b'    printf("hello %s\\n", name);\n'
        b"    return 0;\n"
        b"}\n"
    ),
    Language.CPP: (
        b"#include <iostream>\n#include <string>\n"
        b"int main() {\n"
        b"    std::string name;\n"
        b"    if (!(std::cin >> name)) return 2;\n"
        b'    std::cout << "hello " << name << std::endl;\n'
        b"}\n"
    ),
    Language.JAVA: (
        b"import java.util.Scanner;\n"
        b"// class Decoy in a comment must not name the file\n"
        b"public class Greeter {\n"
        b"    public static void main(String[] args) {\n"
        b"        Scanner in = new Scanner(System.in);\n"
        b'        System.out.println("hello " + in.next());\n'
        b"    }\n"
        b"}\n"
    ),
}

COMPILE_ERRORS: dict[Language, tuple[bytes, bytes]] = {
    Language.C: (b"int main(void) { return undeclared_thing; }\n", b"undeclared_thing"),
    Language.CPP: (b"int main() { std::string s; }\n", b"string"),
    Language.JAVA: (b"public class Main { void f() { int x = ; } }\n", b"illegal start"),
}

# ---------------------------------------------------------------------------- attacks

FORK_BOMB_C = b"#include <unistd.h>\nint main(void) { for (;;) fork(); }\n"

# Counts how many processes it can hold at once; the pids limit (64) must stop it well short.
FORK_COUNT_PY = b"""
import os, time
children = []
try:
    for _ in range(10_000):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
except OSError as exc:
    print(f"fork failed after {len(children)}: {exc.__class__.__name__}", flush=True)
for pid in children:
    os.kill(pid, 9)
"""

MEMORY_BOMB_PY = b"""
blocks = []
while True:
    blocks.append(bytearray(64 * 1024 * 1024))
"""

NETWORK_PY = b"""
import os, socket
print("interfaces", sorted(os.listdir("/sys/class/net")))
for target in [("1.1.1.1", 53), ("127.0.0.1", 9013), ("172.17.0.1", 2375)]:
    try:
        socket.create_connection(target, timeout=2).close()
        print("connected", target)
    except OSError as exc:
        print("connect failed", target[0], exc.__class__.__name__)
try:
    socket.getaddrinfo("deb.debian.org", 80)
    print("resolved")
except OSError as exc:
    print("dns failed", exc.__class__.__name__)
"""

WRITE_OUTSIDE_PY = b"""
import os
for path in ["/etc/passwd", "/tmp/x", "/home/runner/x", "/usr/bin/x", "/x", "/var/tmp/x",
             "/dev/shm/../x", "/proc/sys/kernel/hostname"]:
    try:
        with open(path, "a") as handle:
            handle.write("pwned")
        print("WROTE", path)
    except OSError as exc:
        print("refused", path, exc.__class__.__name__)
with open("/sandbox/fine.txt", "w") as handle:
    handle.write("ok")
print("workdir ok", os.path.getsize("/sandbox/fine.txt"))
"""

FILL_TMPFS_PY = b"""
import os
def fill(path):
    written = 0
    try:
        with open(path, "wb") as handle:
            while True:
                handle.write(b"x" * (1 << 20))
                handle.flush()
                written += 1 << 20
    except OSError as exc:
        return written, exc.__class__.__name__
import signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
print("sandbox", *fill("/sandbox/fill.bin"))
os.remove("/sandbox/fill.bin")
print("shm", *fill("/dev/shm/fill.bin"))
"""

INFINITE_LOOP_PY = b"print('started', flush=True)\nwhile True:\n    pass\n"

FLOOD_PY = b"""
import sys
chunk = "x" * 65536
for _ in range(1600):  # 100 MiB
    sys.stdout.write(chunk)
"""

# Bypasses the driver's FIFOs: writes straight into the exec's own stdout through /proc.
FLOOD_VIA_PROC_PY = b"""
import os
fd = os.open(f"/proc/{os.getppid()}/fd/1", os.O_WRONLY)
chunk = b"y" * 65536
for _ in range(1600):
    os.write(fd, chunk)
"""

STDIN_LENGTH_PY = b"import sys\nprint(len(sys.stdin.buffer.read()))\n"
IGNORES_STDIN_PY = b"print('not reading')\n"

COMPILE_HANG_DEV_RANDOM_C = b"#include </dev/random>\nint main(void) { return 0; }\n"

# Constant evaluation that takes far longer than the compile limit, in little memory.
COMPILE_HANG_CONSTEXPR_CPP = b"""
constexpr unsigned long spin() {
    unsigned long s = 0;
    for (unsigned long i = 0; i < 200000; ++i)
        for (unsigned long j = 0; j < 200000; ++j)
            s += i ^ j;
    return s;
}
static_assert(spin() != 1, "spin");
int main() {}
"""

PRIVILEGES_PY = b"""
import ctypes, os, socket
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("uid", os.getuid(), os.geteuid(), "gid", os.getgid())
print("CapEff", status["CapEff"].strip(), "CapBnd", status["CapBnd"].strip())
print("NoNewPrivs", status["NoNewPrivs"].strip())
attempts = {
    "setuid": lambda: os.setuid(0),
    "chown": lambda: os.chown("/sandbox", 0, 0),
    "mknod": lambda: os.mknod("/sandbox/dev", 0o600 | 0o020000, os.makedev(1, 3)),
    "raw_socket": lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    "chroot": lambda: os.chroot("/sandbox"),
}
for name, attempt in attempts.items():
    try:
        attempt()
        print("ALLOWED", name)
    except OSError as exc:
        print("denied", name, exc.__class__.__name__)
libc = ctypes.CDLL(None, use_errno=True)
result = libc.mount(b"none", b"/sandbox", b"tmpfs", 0, None)
print("mount", "ALLOWED" if result == 0 else f"denied errno {ctypes.get_errno()}")
found = []
for root in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/lib"]:
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                if os.lstat(path).st_mode & 0o6000:
                    found.append(path)
            except OSError:
                pass
print("setuid programs", len(found), found[:5])
"""


def read_host_paths_py(secret_path: str) -> bytes:
    return f"""
import os
for path in [{secret_path!r}, "/var/run/docker.sock", "/run/docker.sock", "/etc/shadow",
             "/proc/1/root/etc/hostname", "/root/.bashrc", "/home"]:
    try:
        if os.path.isdir(path):
            print("listed", path, sorted(os.listdir(path)))
        else:
            with open(path, "rb") as handle:
                print("READ", path, handle.read(40))
    except OSError as exc:
        print("refused", path, exc.__class__.__name__)
print("pid1", open("/proc/1/cmdline", "rb").read().split(b"\\0")[0].decode())
""".encode()
