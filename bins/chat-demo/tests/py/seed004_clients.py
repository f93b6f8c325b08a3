# Two chat clients written like seed 004's PyQt client, without the Qt
# window: Client(address, authkey=b'secret password'), a thread that polls
# and receives, send('{}: {}'.format(username, text)) from the very first
# message on, and ':end' to leave (the server answers ':end').
#
# Usage: python3 seed004_clients.py PORT
#
# The conversation, waiting at each step until every line has arrived:
#   alice joins; bob joins; alice says "hello bob"; bob says "hi alice";
#   bob leaves; alice leaves.
# Prints, for each client, its own address as the server sees it (the
# seed's server announces clients by address) and every message it
# received, ':end' included, one per line:
#   alice ('127.0.0.1', 50312)
#   ...
#   --
import faulthandler
import socket
import sys
import time
from threading import Thread
from multiprocessing.connection import Client

# A stuck conversation must fail, not hang the test.
faulthandler.dump_traceback_later(60, exit=True)

address = ('127.0.0.1', int(sys.argv[1]))
endcode = ':end'


def recive_message(self, connection):
    """The seed's receiving thread; `received` stands for its text box,
    and also records the ':end' that ends the thread."""

    s = ''
    while self.threadliving:
        if connection.poll():
            s = connection.recv()
            self.received.append(s)
            if s == endcode:
                break
        time.sleep(0.01)


class MyForm:
    """The seed's MyForm, minus the window."""

    def __init__(self, username):
        self.threadliving = False
        self.username = username
        self.received = []

    def startChat(self):
        if not self.threadliving:
            self.connection = Client(address, authkey=b'secret password')
            self.messagegetter = Thread(
                    target=recive_message, args=(self, self.connection))
            self.threadliving = True
            self.messagegetter.start()

    def endChat(self):
        if self.threadliving:
            self.connection.send(endcode)   # tell the server we leave
            self.messagegetter.join()       # the thread ends on ':end'
            self.threadliving = False
            self.connection.close()

    def sendMessage(self, s):
        if self.threadliving:
            if s == endcode:
                self.endChat()
            else:
                self.connection.send(
                        '{}: {}'.format(self.username, s))

    def address(self):
        """Where this client connects from (not part of the seed)."""
        sock = socket.socket(fileno=socket.dup(self.connection.fileno()))
        try:
            return str(sock.getsockname())
        finally:
            sock.close()


def wait_for(form, n):
    deadline = time.monotonic() + 20
    while len(form.received) < n:
        if time.monotonic() > deadline:
            raise SystemExit('{} received only {!r}'.format(
                form.username, form.received))
        time.sleep(0.01)


alice = MyForm('alice')
alice.startChat()
wait_for(alice, 1)
bob = MyForm('bob')
bob.startChat()
wait_for(bob, 1)
wait_for(alice, 2)
addresses = {'alice': alice.address(), 'bob': bob.address()}
alice.sendMessage('hello bob')
wait_for(alice, 3)
wait_for(bob, 2)
bob.sendMessage('hi alice')
wait_for(alice, 4)
wait_for(bob, 3)
bob.sendMessage(endcode)       # returns once the server's ':end' arrived
wait_for(alice, 5)
alice.sendMessage(endcode)
for form in (alice, bob):
    print(form.username, addresses[form.username])
    for line in form.received:
        print(line)
    print('--')
