"""The visa service: work and visit visa applications, from eligibility to issue and expiry."""
