"""The 3dcart redirect-gateway wire protocol: JSON bodies, md5 signatures, schemas, error codes."""
