"""What each device runs, as its own signed inventory records said (issue: Know the fleet)."""
