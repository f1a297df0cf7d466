"""moto's server, with DynamoDB's single-item atomicity.

DynamoDB applies each write to an item atomically: a conditional put and
an ADD counter are safe with any number of concurrent writers, and the
pipeline relies on it (a room's seq counter, idempotency claims, rate
gates). moto's server handles requests on threads with no lock around its
DynamoDB tables, so two concurrent UpdateItem ADDs can read the same old
value, and two conditional puts can both pass. Those races are moto's,
not AWS's; they showed as a seq handed to two events under concurrent
planners. This runs moto's own server with every DynamoDB request done
one at a time (each takes well under a millisecond), the other services
as before (SQS long polls must not wait for each other).

Usage: python scripts/moto_server.py -H HOST -p PORT  (moto_server's flags)
"""

import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_one_at_a_time = threading.Lock()
_call_action = DynamoHandler.call_action


def _atomic_call_action(self):
    with _one_at_a_time:
        return _call_action(self)


DynamoHandler.call_action = _atomic_call_action

if __name__ == "__main__":
    main()
