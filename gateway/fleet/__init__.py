"""Facilities tooling for the fleet of seat boards (`seatlink inventory`)."""
