"""Demo data for `make run`: fictional GuardDuty findings and the small importer `seed_demo` uses."""
