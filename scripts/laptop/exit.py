#!/usr/bin/env python3
# Drives `peerq demo` in a pseudo-terminal: waits for its prompt, runs one
# gossip statement, presses Ctrl-D and prints how long the process took to
# end and the lines it said while stopping (BENCHMARKS.md, "The first hour").
# usage: exit.py PEERQ_BINARY [demo flags...]
import fcntl, os, pty, struct, sys, termios, time, select
binary = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(binary, [binary, "demo"] + sys.argv[2:])
# A terminal of 120 × 40, as a user's: at 0 columns the line editor falls
# back to plain input, and that is not what a user runs.
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
buf = b""
t0 = time.time()
while b"peerq>" not in buf:
    r,_,_ = select.select([fd],[],[],1)
    if r:
        try: buf += os.read(fd, 65536)
        except OSError: break
    if time.time()-t0 > 300: print("no prompt"); sys.exit(1)
time.sleep(3)
os.write(fd, b"SELECT COUNT(*) FROM peers WHERE cpu_cores >= 1;\n")
time.sleep(5)
t1 = time.time()
os.write(fd, b"\x04")
out=b""
while True:
    r,_,_ = select.select([fd],[],[],0.05)
    if r:
        try:
            d = os.read(fd, 65536)
            if not d: break
            out += d
        except OSError: break
    p, st = os.waitpid(pid, os.WNOHANG)
    if p: break
t2 = time.time()
os.waitpid(pid,0) if not p else None
print("exit after Ctrl-D: %.2fs" % (t2-t1))
print([l for l in out.decode(errors="replace").splitlines() if "stopping" in l or "still" in l])
