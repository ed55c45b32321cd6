"""What tests and benchmarks share: fake fal and S3 servers, a real Postgres server, media and storyboard makers."""
