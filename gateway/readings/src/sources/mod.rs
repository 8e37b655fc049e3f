//! Reading sources: serial ports and MQTT brokers. Each turns bytes into
//! [`crate::queue::Arrival`]s and hands them to ingestion; each device's
//! trouble stays its own (a bad line is one refusal, a dead port is retried).
pub mod mqtt;
pub mod serial;
