"""Employment e-contracts: drafted by an employer, accepted and signed by both parties."""
