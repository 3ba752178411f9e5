#!/usr/bin/env python3
"""The Linux legacy virtio-pci probe of an MMR VF, through vmmr's guest view (the translator).

Python 3 standard library only. Each I/O access below is one request; the translator turns it
into one MMIO access of the same width on the VF's BAR 2 (legacy block at 0x1000). The order is
drivers/virtio/virtio_pci_legacy.c's (with MSI-X off, so device config starts at 0x14):
reset, ACKNOWLEDGE, DRIVER, features, device config, each queue, DRIVER_OK, a kick of queue 0.

    VMMR_URL=http://127.0.0.1:8080 python3 examples/legacy-probe.py [PF [VF]]

Enables 4 VFs on PF (default 0000:01:00.0) when it has none; VF defaults to 0000:01:00.1.
VMMR_TOKEN, when set, is sent as a bearer token.
"""
import json
import os
import sys
import urllib.error
import urllib.request

URL = os.environ.get("VMMR_URL", "http://127.0.0.1:8080").rstrip("/") + "/api/v1"
TOKEN = os.environ.get("VMMR_TOKEN")
PF = sys.argv[1] if len(sys.argv) > 1 else "0000:01:00.0"
VF = sys.argv[2] if len(sys.argv) > 2 else "0000:01:00.1"

# Legacy register block, virtio 1.x §4.1.4.10 "Legacy Interfaces: A Note on PCI Device Layout"
# (Linux include/uapi/linux/virtio_pci.h).
HOST_FEATURES, GUEST_FEATURES, QUEUE_PFN, QUEUE_NUM = 0x00, 0x04, 0x08, 0x0C
QUEUE_SEL, QUEUE_NOTIFY, STATUS, ISR, CONFIG = 0x0E, 0x10, 0x12, 0x13, 0x14
# Device status bits, virtio 1.x §2.1 "Device Status Field".
STATUS_NAMES = {1: "ACKNOWLEDGE", 2: "DRIVER", 4: "DRIVER_OK", 8: "FEATURES_OK", 128: "FAILED"}
PFN_BASE = 0x10000


def call(method, path, body=None):
    headers = {"accept": "application/json"}
    if body is not None:
        headers["content-type"] = "application/json"
    if TOKEN:
        headers["authorization"] = "Bearer " + TOKEN
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        problem = json.load(err)
        sys.exit(f"legacy-probe: {method} {path}: {problem.get('detail')} ({problem.get('code')})")
    except urllib.error.URLError as err:
        sys.exit(f"legacy-probe: cannot reach {URL}: {err.reason}")


def guest_config(offset, width, value=None):
    path = f"/functions/{VF}/guest/config/{offset:#x}"
    if value is None:
        return int(call("GET", f"{path}?width={width}")["value"], 16)
    return call("PUT", path, {"width": width, "value": value})


def io_read(port, width):
    return int(call("GET", f"/functions/{VF}/guest/io/{port:#x}?width={width}")["value"], 16)


def io_write(port, width, value):
    call("PUT", f"/functions/{VF}/guest/io/{port:#x}", {"width": width, "value": value})


def add_status(bit):
    io_write(STATUS, 1, io_read(STATUS, 1) | bit)


def status_names(status):
    return " ".join(name for bit, name in STATUS_NAMES.items() if status & bit)


def main():
    if call("GET", f"/pfs/{PF}/sriov")["numVfs"] == 0:
        call("PUT", f"/pfs/{PF}/sriov", {"numVfs": 4})
    ids = guest_config(0x00, 4)
    print(f"{VF}: {ids & 0xFFFF:04x}:{ids >> 16:04x}")
    guest_config(0x04, 2, 0x0001)  # Command: I/O Space, as pci_enable_device
    io_write(STATUS, 1, 0)
    if io_read(STATUS, 1) != 0:
        sys.exit("legacy-probe: the device did not reset")
    add_status(1)
    add_status(2)
    features = io_read(HOST_FEATURES, 4)
    io_write(GUEST_FEATURES, 4, features)
    print(f"host features {features:#010x}")
    mac = [io_read(CONFIG + i, 1) for i in range(6)]
    print("mac " + ":".join(f"{byte:02x}" for byte in mac))
    queue = 0
    while True:
        io_write(QUEUE_SEL, 2, queue)
        size = io_read(QUEUE_NUM, 2)
        if size == 0:
            break
        if io_read(QUEUE_PFN, 4) != 0:
            sys.exit(f"legacy-probe: queue {queue} is already active")
        io_write(QUEUE_PFN, 4, PFN_BASE + queue * 0x10)
        print(f"queue {queue}: {size} entries, pfn {PFN_BASE + queue * 0x10:#x}")
        queue += 1
    add_status(4)
    io_write(QUEUE_NOTIFY, 2, 0)
    isr = io_read(ISR, 1)
    status = io_read(STATUS, 1)
    print(f"status {status:#04x} ({status_names(status)}), isr {isr:#04x}")


main()
