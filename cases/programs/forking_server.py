"""A forking echo server from Python's standard library: one worker process per connection.

Usage: forking_server.py ADDRESS PORT FAMILY (ipv4 or ipv6). Each worker echoes what it reads
until the client closes.
"""
import socket
import socketserver
import sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True


if __name__ == "__main__":
    host, port, family = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    Server.address_family = socket.AF_INET6 if family == "ipv6" else socket.AF_INET
    Server((host, port), Echo).serve_forever()
