"""Components: persistent buttons, modals and the guided setup view."""
