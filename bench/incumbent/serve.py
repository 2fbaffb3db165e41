"""Runs the incumbent as `uvicorn app:app --workers N ...` does (same arguments), with the
fix for uvicorn's issue #3149 (still open in the pinned 0.38.0) applied.

With more than one worker, uvicorn binds the listening socket itself and leaves its
protocol number at 0. Accepted connections inherit it, and asyncio only sets TCP_NODELAY
on sockets that say IPPROTO_TCP, so every keep-alive answer after the first waits about
40 ms on the client's delayed ACK (Nagle's algorithm). That would measure a socket option,
not the stack: here the listener is re-made from the same descriptor, which makes Python
read its real protocol, and the accepted connections get TCP_NODELAY as with one worker.
"""

import socket

import uvicorn
from uvicorn.config import Config

bind_socket = Config.bind_socket


def bind_tcp_socket(self):
    sock = bind_socket(self)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock = socket.socket(fileno=sock.detach())
    return sock


Config.bind_socket = bind_tcp_socket

if __name__ == "__main__":
    uvicorn.main()
