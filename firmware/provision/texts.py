"""What the installer reads in the wizard, in Dutch and English (neutral, no names: R14)."""
from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "step": {"nl": "Stap {n} van {total}: {title}", "en": "Step {n} of {total}: {title}"},
    "skip": {"nl": "Stap {n} ({title}) is al gedaan: {result}", "en": "Step {n} ({title}) is done already: {result}"},
    "household": {"nl": "huishouden en broker", "en": "household and broker"},
    "plan": {"nl": "het huishoudplan", "en": "the household plan"},
    "contacts": {"nl": "contactpersonen", "en": "contacts"},
    "tags": {"nl": "tags koppelen", "en": "tag pairing"},
    "door": {"nl": "deursensor", "en": "door sensor"},
    "microphone": {"nl": "microfoon kalibreren", "en": "microphone calibration"},
    "walk": {"nl": "looptest", "en": "walk test"},
    "panel": {"nl": "paneeltest", "en": "panel test"},
    "calls": {"nl": "testoproepen en test-sms", "en": "test calls and test SMS"},
    "summary": {"nl": "overzicht voor het huishouddossier", "en": "summary for the household file"},
    "doctor": {"nl": "controle (doctor)", "en": "check (doctor)"},
    "not_built": {"nl": "nog niet gebouwd: doe dit met de hand (docs/guides/installer.nl.md)",
                  "en": "not built yet: do this by hand (docs/guides/installer.en.md)"},
    "q_household": {"nl": "Huishouden-id (2-32 tekens a-z, 0-9, -)", "en": "Household id (2-32 of a-z, 0-9, -)"},
    "q_port": {"nl": "Poort van de broker", "en": "Broker port"},
    "q_plan": {"nl": "Pad van het voorbereide huishoudplan (TOML), of 'interview' om het nu samen op te stellen",
               "en": "Path of the prepared household plan (TOML), or 'interview' to make it now together"},
    "interview_start": {"nl": "Het plan wordt nu met beide partners opgesteld; de tags volgen in stap 4.",
                        "en": "The plan is now made with both partners; the tags follow in step 4."},
    "q_code_word": {"nl": "Codewoord waaraan contactpersonen het huishouden herkennen (geen naam)",
                    "en": "Code word the contacts know the household by (not a name)"},
    "q_modem": {"nl": "Poort van de modem (AT)", "en": "The modem's AT port"},
    "q_contacts": {"nl": "Nummers van de contactpersonen van partner {p}, in belvolgorde, met komma's (+31...)",
                   "en": "Numbers of partner {p}'s contacts, in calling order, comma-separated (+31...)"},
    "q_phone": {"nl": "Eigen nummer van partner {p} (check-ins per sms)",
                "en": "Partner {p}'s own number (check-ins by SMS)"},
    "q_tag": {"nl": "Tag van partner {p}: 'pair' (tag tegen de hub houden), 'irk:SLEUTEL' (telefoon) of 'keep'",
              "en": "Partner {p}'s tag: 'pair' (hold the tag against the hub), 'irk:KEY' (a phone) or 'keep'"},
    "hold_tag": {"nl": "Houd de tag van partner {p} tegen de hub ({s:.0f} s luisteren)…",
                 "en": "Hold partner {p}'s tag against the hub (listening {s:.0f} s)…"},
    "offer_tag": {"nl": "Gehoord: {addr} op {rssi} dBm. Is dit de tag van partner {p}? (ja/nee)",
                  "en": "Heard: {addr} at {rssi} dBm. Is this partner {p}'s tag? (yes/no)"},
    "q_door": {"nl": "Deursensor: 'none', 'gpio' (reedcontact) of 'bthome' (Shelly BLU)",
               "en": "Door sensor: 'none', 'gpio' (reed contact) or 'bthome' (Shelly BLU)"},
    "q_pin": {"nl": "BCM-GPIO-nummer van het contact", "en": "BCM GPIO number of the contact"},
    "q_mac": {"nl": "Bluetooth-adres van de sensor", "en": "The sensor's Bluetooth address"},
    "q_key": {"nl": "Sleutel (bind key, 32 hex-tekens)", "en": "Bind key (32 hex digits)"},
    "doctor_failed": {"nl": "De controle vond een fout. Herstel die, start de diensten en voer "
                             "`timeout-hub provision` opnieuw uit: het gaat verder bij deze stap.",
                      "en": "The check found a failure. Fix it, start the services and run "
                            "`timeout-hub provision` again: it continues at this step."},
    "finished": {"nl": "De installatie is klaar. Het overzicht staat in {record}.",
                 "en": "The installation is finished. The summary is in {record}."},
    "calling": {"nl": "Testoproep naar contactpersoon {n} van partner {p}…",
                "en": "Test call to partner {p}'s contact {n}…"},
    "call_ok": {"nl": "partner {p}, contactpersoon {n}: drukte op 1, test-sms verstuurd: geslaagd",
                "en": "partner {p}, contact {n}: pressed 1, test SMS sent: passed"},
    "call_not_ok": {"nl": "partner {p}, contactpersoon {n}: NIET geslaagd, niet op 1 gedrukt ({outcome})",
                    "en": "partner {p}, contact {n}: NOT passed, did not press 1 ({outcome})"},
    "sms_not_ok": {"nl": "partner {p}, contactpersoon {n}: drukte op 1, maar de test-sms is NIET verstuurd",
                   "en": "partner {p}, contact {n}: pressed 1, but the test SMS was NOT sent"},
    "call_what_to_do": {"nl": "Bel deze contactpersoon zelf, leg uit dat de hub belt en dat op 1 "
                              "drukken betekent dat het bericht is gehoord, en probeer opnieuw; of "
                              "kies met de partner een andere contactpersoon.",
                        "en": "Call this contact yourself, explain that the hub will call and that "
                              "pressing 1 means the message was heard, and try again; or choose "
                              "another contact with the partner."},
    "q_retry_calls": {"nl": "De niet geslaagde contactpersonen opnieuw bellen? (ja/nee)",
                      "en": "Call the contacts that did not pass again? (yes/no)"},
    "no_contacts": {"nl": "geen contactpersonen in het plan", "en": "no contacts in the plan"},
    "modem_failed": {"nl": "de modem werkt niet ({why}); controleer de modem en de simkaart, stop "
                           "de dienst timeout-hub-caller als die draait en voer de wizard opnieuw uit",
                     "en": "the modem does not work ({why}); check the modem and its SIM, stop the "
                           "timeout-hub-caller service if it runs, and run the wizard again"},
    "light_sensing_led": {"nl": "meet-lampje", "en": "sensing light"},
    "light_suggestion_led": {"nl": "voorstel-lampje (pauze)", "en": "suggestion light (break)"},
    "light_active_led": {"nl": "time-out-lampje", "en": "time-out light"},
    "light_fault_led": {"nl": "storingslampje", "en": "fault light"},
    "light_question_led": {"nl": "vraag-lampje", "en": "question light"},
    "light_timeout_led": {"nl": "lampje in de time-outknop", "en": "light in the time-out button"},
    "light_bar": {"nl": "thermometer (alle lampjes na elkaar)", "en": "thermometer (all lights one after another)"},
    "light_buzzer": {"nl": "zoemer", "en": "buzzer"},
    "q_light": {"nl": "Brandt nu: {light}? (ja/nee)", "en": "Is this on now: {light}? (yes/no)"},
    "button_timeout_button": {"nl": "time-outknop", "en": "time-out button"},
    "button_mood_1": {"nl": "knop 'rustig'", "en": "button 'calm'"},
    "button_mood_2": {"nl": "knop 'een beetje gespannen'", "en": "button 'a bit tense'"},
    "button_mood_3": {"nl": "knop 'niet rustig'", "en": "button 'not calm'"},
    "press_button": {"nl": "Druk op de {button} (binnen {s:.0f} s)…", "en": "Press the {button} (within {s:.0f} s)…"},
    "button_not_heard": {"nl": "{button}: geen druk gehoord", "en": "{button}: no press heard"},
    "panel_ok": {"nl": "alle {lights} lampjes en {buttons} knoppen werken",
                 "en": "all {lights} lights and {buttons} buttons work"},
    "panel_not_ok": {"nl": "NIET geslaagd: {which}", "en": "NOT passed: {which}"},
    "panel_what_to_do": {"nl": "Controleer de bedrading van wat niet werkte (hardware/panel.md) en "
                               "test het daarna met het paneel in bedrijf.",
                         "en": "Check the wiring of what did not work (hardware/panel.md), then test "
                               "it with the panel running."},
    "gpio_failed": {"nl": "de pinnen van het paneel zijn niet te gebruiken ({why}); stop de dienst "
                          "timeout-hub-panel als die draait en voer de wizard opnieuw uit",
                    "en": "the panel's pins cannot be used ({why}); stop the timeout-hub-panel "
                          "service if it runs, and run the wizard again"},
    "bad_panel": {"nl": "panel.toml is niet geldig: {why}", "en": "panel.toml is not valid: {why}"},
    "q_mic_device": {"nl": "Microfoon (deel van de naam of nummer; 'default': die van het systeem)",
                     "en": "Microphone (part of its name or its number; 'default': the system's)"},
    "q_calibrator": {"nl": "Staat er een geluidskalibrator (1 kHz) op de microfoon? (ja/nee)",
                     "en": "Is a sound calibrator (1 kHz) on the microphone? (yes/no)"},
    "q_reference_db": {"nl": "Niveau van de kalibrator in dB", "en": "The calibrator's level in dB"},
    "listening_calibrator": {"nl": "Luisteren naar de kalibrator (5 s)…", "en": "Listening to the calibrator (5 s)…"},
    "no_tone": {"nl": "geen kalibratortoon gehoord (afwijking {offset:.0f} dB)",
                "en": "no calibrator tone heard (offset {offset:.0f} dB)"},
    "calibrator_ok": {"nl": "gekalibreerd met {ref:.0f} dB: afwijking {offset:.1f} dB in sensors.toml",
                      "en": "calibrated with {ref:.0f} dB: offset {offset:.1f} dB in sensors.toml"},
    "calibrator_not_ok": {"nl": "kalibratie NIET geslaagd: zet de kalibrator goed op de microfoon en voer "
                                "`timeout-hub calibrate --reference-db 94` uit",
                          "en": "calibration NOT passed: seat the calibrator on the microphone and run "
                                "`timeout-hub calibrate --reference-db 94`"},
    "q_talk": {"nl": "Nu een minuut gewoon praten (beide partners, bij de hub)? (ja/nee)",
               "en": "Now a minute of normal talk (both partners, near the hub)? (yes/no)"},
    "q_talk_seconds": {"nl": "Hoeveel seconden luisteren (10-600)", "en": "How many seconds to listen (10-600)"},
    "talk_ok": {"nl": "basis van gewoon praten opgeslagen (alleen getallen)",
                "en": "baseline of normal talk saved (numbers only)"},
    "talk_not_ok": {"nl": "basis van gewoon praten NIET opgeslagen: voer later `timeout-hub calibrate` uit",
                    "en": "baseline of normal talk NOT saved: run `timeout-hub calibrate` later"},
    "mic_nothing": {"nl": "niet gekalibreerd: voer later `timeout-hub calibrate` uit",
                    "en": "not calibrated: run `timeout-hub calibrate` later"},
    "q_walk_seconds": {"nl": "Seconden luisteren per plek", "en": "Seconds to listen at each place"},
    "bad_walk_seconds": {"nl": "geef 1 tot 120 seconden", "en": "give 1 to 120 seconds"},
    "place_room": {"nl": "de verste kamer", "en": "the farthest room"},
    "place_door": {"nl": "de voordeur (binnen)", "en": "the exit door (inside)"},
    "carry_tag": {"nl": "Breng de tag van partner {p} naar {where} en druk op Enter; de hub luistert dan.",
                  "en": "Carry partner {p}'s tag to {where} and press Enter; the hub then listens."},
    "walk_no_tag": {"nl": "partner {p}: geen tag met vast adres (telefoon): controleer na een dag met "
                          "`timeout-hub doctor`",
                    "en": "partner {p}: no tag with a fixed address (a phone): check a day later with "
                          "`timeout-hub doctor`"},
    "walk_ok": {"nl": "partner {p}, {where}: goed gehoord, {m:.0f} dB boven de ondergrens",
                "en": "partner {p}, {where}: heard well, {m:.0f} dB above the floor"},
    "walk_weak": {"nl": "partner {p}, {where}: NIET geslaagd, maar {m:.0f} dB boven de ondergrens "
                        "(nodig: {need:.0f})",
                  "en": "partner {p}, {where}: NOT passed, only {m:.0f} dB above the floor "
                        "(needed: {need:.0f})"},
    "walk_not_heard": {"nl": "partner {p}, {where}: NIET geslaagd, de tag is niet gehoord",
                       "en": "partner {p}, {where}: NOT passed, the tag was not heard"},
    "walk_what_to_do": {"nl": "Zet de hub centraler en hoger, weg van metaal en de meterkast, of controleer "
                              "de batterij van de tag, en doe de looptest opnieuw: "
                              "`timeout-hub provision --again walk`.",
                        "en": "Place the hub more centrally and higher, away from metal and the meter "
                              "cupboard, or check the tag's battery, and do the walk test again: "
                              "`timeout-hub provision --again walk`."},
    # refusals: one sentence each
    "bad_household": {"nl": "{v!r} is geen huishouden-id: 2-32 tekens a-z, 0-9 en -, eerste geen -",
                      "en": "{v!r} is not a household id: 2-32 of a-z, 0-9 and -, not starting with -"},
    "bad_port": {"nl": "{v!r} is geen poort (1-65535)", "en": "{v!r} is not a port (1-65535)"},
    "no_file": {"nl": "{v} bestaat niet", "en": "{v} does not exist"},
    "other_household": {"nl": "het plan is voor huishouden {plan}, niet voor {hh}",
                        "en": "the plan is for household {plan}, not {hh}"},
    "bad_number": {"nl": "{v!r} is geen internationaal nummer zoals +31612345678",
                   "en": "{v!r} is not an international number like +31612345678"},
    "count": {"nl": "het plan geeft partner {p} {n} contactperso(o)n(en), hier staan er {m}",
              "en": "the plan gives partner {p} {n} contact(s), {m} given here"},
    "bad_tag": {"nl": "{v!r} is geen 'pair', 'keep' of 'irk:' met 32 hex-tekens",
                "en": "{v!r} is not 'pair', 'keep' or 'irk:' with 32 hex digits"},
    "no_tag_heard": {"nl": "geen onbekende tag dichtbij genoeg gehoord (sterker dan {min} dBm): houd "
                           "de tag tegen de hub en probeer opnieuw",
                     "en": "no unknown tag heard close enough (stronger than {min} dBm): hold the "
                           "tag against the hub and try again"},
    "not_this_tag": {"nl": "de tag is niet gekozen: probeer opnieuw", "en": "the tag was not taken: try again"},
    "yes_no": {"nl": "antwoord ja of nee", "en": "answer yes or no"},
    "bad_door": {"nl": "{v!r} is niet 'none', 'gpio' of 'bthome'", "en": "{v!r} is not 'none', 'gpio' or 'bthome'"},
    "bad_sensors": {"nl": "de deursensor past niet: {why}", "en": "the door sensor does not fit: {why}"},
    "bad_plan": {"nl": "het plan is niet geldig: {why}", "en": "the plan is not valid: {why}"},
}


def t(lang: str, key: str, **kw: object) -> str:
    return TEXTS[key][lang].format(**kw)
