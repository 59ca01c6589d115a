"""The device's software and hardware inventory: collected by a short-lived child
process (so psutil and a 3,000-row package list never stay in the daemon), turned into
device-signed full or diff records, sent to the hub and spread by site gossip."""
