#!/usr/bin/env python3
"""udp_driver.py: run the udp workload against one server (corun or node).

Usage: python3 bench/workloads/udp_driver.py corun|node

echo_driver.py with NAME = "udp": udp_corun.lua or udp_node.js against the
load generator udp_client.c (50 sockets x 2,000 round trips of a 64-byte
datagram, scaled by BENCH_SCALE); see echo_driver.py.
"""
from echo_driver import main

if __name__ == "__main__":
    main("udp")
