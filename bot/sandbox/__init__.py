"""HTTP simulators of the providers' APIs, for the console demo, the tests and the benchmarks."""
