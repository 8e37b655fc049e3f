//! Reading sources: serial ports, MQTT brokers and polled Modbus RTU lines. Each turns bytes into
//! [`crate::queue::Arrival`]s and hands them to ingestion; each device's
//! trouble stays its own (a bad line is one refusal, a dead port is retried).
pub mod modbus;
pub mod mqtt;
pub mod serial;
