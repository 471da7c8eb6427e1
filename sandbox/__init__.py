"""The newcomer sandbox and the test harness: local Kommo and Zoom emulators and a Calendly sender."""
