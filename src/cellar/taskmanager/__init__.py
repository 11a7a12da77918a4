"""The task manager: accepts jobs, runs them as persisted TaskFlow flows, resumes them."""
