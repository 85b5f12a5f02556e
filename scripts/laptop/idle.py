#!/usr/bin/env python3
# Drives `peerq demo` in a pseudo-terminal: waits for its prompt, lets it
# settle 20 s, then reads its CPU time and resident memory from /proc over
# 60 s of idling (BENCHMARKS.md, "The first hour"). Linux only.
# usage: idle.py PEERQ_BINARY
import fcntl, os, pty, struct, sys, termios, time, select
binary = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(binary, [binary, "demo"])
# A terminal of 120 × 40, as a user's: at 0 columns the line editor falls
# back to plain input, and that is not what a user runs.
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
buf=b""; t0=time.time()
while b"peerq>" not in buf:
    r,_,_=select.select([fd],[],[],1)
    if r: buf+=os.read(fd,65536)
time.sleep(20)
def cpu():
    f=open(f"/proc/{pid}/stat").read().split(")")[1].split()
    return (int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK")
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])/1024
c0=cpu(); t=time.time(); time.sleep(60); c1=cpu(); dt=time.time()-t
print("idle CPU %.1f%% of a core, RSS %.0f MB" % (100*(c1-c0)/dt, rss()))
os.write(fd,b"\x04"); os.waitpid(pid,0)
