"""Renders bench/network.sh's figures as the network section of docs/benchmarks.md."""
import datetime
import statistics
import sys


def median(csv):
    return statistics.median(float(x) for x in csv.split(","))


def rates(csv):
    """The rates of rounds with at least one connection, and notes on rounds that failed."""
    out, notes = [], []
    for i, item in enumerate(csv.split(","), 1):
        rate, failed = item.split(":")
        if failed == "-" or int(failed) > 0:
            out.append(float(rate))
        if failed != "-":
            notes.append(f"round {i}: refused after {failed} connections")
    return out, notes


def main():
    (secs, rounds, loop, b_bridge, d_bridge, b_pub, d_pub, b_conn, d_conn, join,
     kernel, cores, iperf, dockerd, proxy) = sys.argv[1:16]
    # Connection rates come as rate:failed_after per round ("-" when none failed); a round
    # in which the very first connection failed has no rate.
    b_rates, b_fail = rates(b_conn)
    d_rates, d_fail = rates(d_conn)
    loop, b_bridge, d_bridge, b_pub, d_pub = map(median, (loop, b_bridge, d_bridge, b_pub, d_pub))
    b_conn = statistics.median(b_rates) if b_rates else 0.0
    d_conn = statistics.median(d_rates) if d_rates else 0.0
    ratio = f"{b_conn / d_conn:.2f}" if d_conn else "n/a"
    fields = dict(kv.split("=") for kv in join.split())
    today = datetime.date.today().isoformat()
    print(f"""## Networking

Measured by `bench/network.sh {secs} {rounds}` on {today}: Linux {kernel}, {cores} cores, a
shared VM, all parties in one run, in {rounds} rounds that interleave them (each figure is the
median over the rounds). Each party has a network namespace of its own standing in for
the host (berth's, dockerd's, and one for loopback); iperf3 runs one TCP stream for
{secs} s, client and server entered into the containers' namespaces with nsenter. dockerd
is {dockerd} with its defaults (docker-proxy on, iptables); {iperf}.

| path | berth Gbit/s | docker Gbit/s | berth ÷ docker | host loopback Gbit/s |
|---|---:|---:|---:|---:|
| container → container, user bridge | {b_bridge:.2f} | {d_bridge:.2f} | {b_bridge / d_bridge:.2f} | {loop:.2f} |
| host → container, published on 127.0.0.1 | {b_pub:.2f} | {d_pub:.2f} | {b_pub / d_pub:.2f} | {loop:.2f} |

| connections per second to a port published on 127.0.0.1 | berth | docker | berth ÷ docker |
|---|---:|---:|---:|
| connect + reset, one client, up to {secs} s | {b_conn:.0f} | {d_conn:.0f} | {ratio} |
| failures | {"; ".join(b_fail) or "none"} | {"; ".join(d_fail) or "none"} | |

After the rounds, docker's docker-proxy for that port was **{proxy}**.

Joining a sandbox to a bridge (new network namespace pinned, veth pair with its peer born in
the sandbox, bridge port, MAC, address, link up, default route), measured in-process by
`netbench join` over {fields['n']} joins: median **{float(fields['median_ms']):.2f} ms**,
p90 {float(fields['p90_ms']):.2f} ms.

Published ports in berth are nftables DNAT map elements, so traffic to them never leaves
the kernel; docker's default sends it through docker-proxy, a userland copy.""")


if __name__ == "__main__":
    main()
