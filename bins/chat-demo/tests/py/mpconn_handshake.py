# The authkey handshake of Python's multiprocessing.connection, both
# generations, written out over a plain socket with Python's own `hmac` and
# `os.urandom`, so that chat-demo is tested against real Python HMACs on any
# machine: Debian 12's python3 is 3.11, which only speaks the old one.
#
#   3.12: the challenge is b'{sha256}' + 40 random bytes; the answer is
#         b'{sha256}' + HMAC-SHA256(key, whole message, prefix included).
#   3.11: the challenge is 20 random bytes; the answer is the bare
#         16-byte HMAC-MD5(key, message), whatever the message looks like.
#
# (CPython Lib/multiprocessing/connection.py: deliver_challenge,
# answer_challenge. A real 3.12 server also takes a bare MD5 answer from an
# old client; this one does not, so that an answer in the wrong generation
# fails the test.)
#
# Usage:
#   mpconn_handshake.py client GENERATION PORT KEY
#       Connects to a chat-demo server (seed protocol) like
#       Client(addr, authkey=KEY): answers its challenge, then challenges
#       it; then receives the arrival notice, says one line, leaves.
#   mpconn_handshake.py listener GENERATION KEY
#       Listens like Listener(addr, authkey=KEY) on port 0 and prints the
#       port; accepts one client: challenges it, then answers its
#       challenge; then greets it and echoes its lines until ':end'.
# GENERATION is 3.12 or 3.11. Each step is printed on its own line.
import faulthandler
import hmac
import os
import pickle
import socket
import struct
import sys

faulthandler.dump_traceback_later(30, exit=True)

CHALLENGE = b'#CHALLENGE#'
WELCOME = b'#WELCOME#'
FAILURE = b'#FAILURE#'


def say(*words):
    print(*words, flush=True)


def send_bytes(sock, data):
    sock.sendall(struct.pack('!i', len(data)) + data)


def recv_exact(sock, n):
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError('the peer closed the connection')
        data += chunk
    return data


def recv_bytes(sock, maxsize=1 << 20):
    size, = struct.unpack('!i', recv_exact(sock, 4))
    if size == -1:
        size, = struct.unpack('!Q', recv_exact(sock, 8))
    if size > maxsize:
        raise SystemExit('message of {} bytes is too long'.format(size))
    return recv_exact(sock, size)


def deliver_challenge(sock, key, generation):
    """Challenges the peer; True if its answer is the exact expected one."""
    if generation == '3.12':
        message = b'{sha256}' + os.urandom(40)
        expected = b'{sha256}' + hmac.new(key, message, 'sha256').digest()
    else:
        message = os.urandom(20)
        expected = hmac.new(key, message, 'md5').digest()
    send_bytes(sock, CHALLENGE + message)
    answer = recv_bytes(sock, 256)
    ok = hmac.compare_digest(answer, expected)
    send_bytes(sock, WELCOME if ok else FAILURE)
    say('peer answer', 'ok' if ok else 'wrong: {!r}'.format(answer))
    return ok


def answer_challenge(sock, key, generation):
    """Answers the peer's challenge; True if it welcomes the answer."""
    message = recv_bytes(sock, 256)
    if not message.startswith(CHALLENGE):
        raise SystemExit('expected a challenge, got {!r}'.format(message))
    message = message[len(CHALLENGE):]
    if message.startswith(b'{'):
        prefix = message[:message.index(b'}') + 1]
    else:
        prefix = b''
    say('challenge', prefix.decode() or '(no prefix)',
        len(message) - len(prefix), 'random bytes')
    if generation == '3.12' and prefix:
        digest = prefix[1:-1].decode()
        answer = prefix + hmac.new(key, message, digest).digest()
    else:
        answer = hmac.new(key, message, 'md5').digest()
    send_bytes(sock, answer)
    verdict = recv_bytes(sock, 256)
    say('our answer', 'welcomed' if verdict == WELCOME else 'rejected')
    return verdict == WELCOME


def recv_str(sock):
    return pickle.loads(recv_bytes(sock))


def client(generation, port, key):
    sock = socket.create_connection(('127.0.0.1', int(port)), timeout=20)
    say('address', sock.getsockname())
    if not answer_challenge(sock, key, generation):
        return
    if not deliver_challenge(sock, key, generation):
        return
    say('got', recv_str(sock))
    send_bytes(sock, pickle.dumps('py: hello'))
    say('got', recv_str(sock))
    send_bytes(sock, pickle.dumps(':end'))
    say('got', recv_str(sock))


def listener(generation, key):
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen()
    say(server.getsockname()[1])
    sock, _ = server.accept()
    sock.settimeout(20)
    if not deliver_challenge(sock, key, generation):
        return
    if not answer_challenge(sock, key, generation):
        return
    send_bytes(sock, pickle.dumps('welcome'))
    while True:
        line = recv_str(sock)
        say('got', line)
        if line == ':end':
            send_bytes(sock, pickle.dumps(':end'))
            break
        send_bytes(sock, pickle.dumps(line))


if __name__ == '__main__':
    mode, generation, *rest = sys.argv[1:]
    assert generation in ('3.11', '3.12'), generation
    if mode == 'client':
        client(generation, rest[0], rest[1].encode())
    else:
        listener(generation, rest[0].encode())
