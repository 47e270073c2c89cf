"""The billing part of the public REST API: usage, invoices, estimates."""
