//! mock-provider: placeholder library (the real server is issue 4).
