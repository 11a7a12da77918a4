"""The guest agent that runs inside each server, and one manager per datastore."""
