"""ssh ProxyCommand with ``ProxyUseFdpass yes``: connect to 127.0.0.1:PORT, hand the socket to ssh.

    ProxyCommand /usr/bin/python3 -I -S fdpass.py PORT

Lets every emulated node have its own ssh Host alias (and so its own ``%C`` shared
connection) while all of them reach the bench's one sshd; the helper exits once the
socket is passed, so no byte goes through it.
"""

import socket
import sys

if __name__ == "__main__":
    conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    with socket.socket(fileno=1) as channel:
        socket.send_fds(channel, [b"\0"], [conn.fileno()])
