pub mod connectors;
pub mod credentials;
pub mod dashboard;
pub mod docs;
pub mod health;
pub mod keys;
pub mod polling;
pub mod prices;
mod views;
