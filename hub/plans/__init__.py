"""Plans, subscriptions and quotas: who may call a product, how fast, and how much."""
