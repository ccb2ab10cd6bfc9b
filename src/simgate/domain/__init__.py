"""The pure core: numbers, operations, SMS and the rules. No I/O, time is passed in."""
