"""The kit's plumbing: settings, secrets, templates, the platform table and the operations roles share.

Roles (roles/) describe what a host should be; this package holds what they build on.
"""
