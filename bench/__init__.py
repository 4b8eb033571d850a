"""pyprocd benchmarks: `make bench` (= `python3 -m bench`).

bench/peers/ compares pyprocd with supervisord, circus, runit and s6; every
module bench/bench_*.py defining run(quick: bool) -> dict is collected too.
"""
