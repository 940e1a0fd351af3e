"""What runs inside Kamailio (its app_python3 interpreter, the system python3): every new call's routing
decision from the published routing table, and the call's records in Redis. An ordinary call never
waits for the controller, and calls still connect while it is down; see kamailio/xfer_routing.py.

Only the standard library, redis-py, controller.core, controller.routing and controller.wire are
imported here (tests/unit/proxy/test_import_contract.py): no pydantic, no asyncio service code.
"""
