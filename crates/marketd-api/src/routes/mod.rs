pub mod dashboard;
pub mod docs;
pub mod health;
pub mod polling;
pub mod prices;
