"""Headless Chromium (Debian's chromium + chromedriver) driven by Selenium, and the Airflow UI steps the tests take."""
from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-dev-shm-usage", "--window-size=1400,1000")
DIALOG = "[data-scope=dialog][data-part=content]"  # the open modal (popovers are role=dialog too)
DIALOG_XPATH = "//*[@data-scope='dialog' and @data-part='content']"
WAIT_S = 30  # one UI step (a page, a dialog, a toast) appears within this many seconds


def missing() -> str | None:
    """Return why the browser cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and not shutil.which(Path(path).name):
            return f"{path} is missing (apt-get install -y chromium chromium-driver)"
    return None


def chrome() -> webdriver.Chrome:
    """Start headless Chromium; the driver is Debian's, so Selenium never downloads one."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait(driver, timeout: float = WAIT_S) -> WebDriverWait:
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))


def login(driver, base: str, password: str) -> None:
    """Sign in on Airflow's login page as admin."""
    driver.get(f"{base}/")
    wait(driver).until(EC.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(lambda d: "/auth/login" not in d.current_url
                      and d.find_elements(By.CSS_SELECTOR, "button[aria-label='Browse']"))


def open_trigger_dialog(driver, base: str, dag_id: str):
    """Open the DAG's page and its Trigger dialog; return the dialog."""
    driver.get(f"{base}/dags/{dag_id}")
    wait(driver).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Trigger Dag']"))).click()
    return wait(driver).until(EC.visibility_of_element_located((By.CSS_SELECTOR, DIALOG)))


def choose(driver, value: str) -> None:
    """Pick a radio card (single / backfill, none / failed / completed) by its value."""
    radio = wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, f"input[type=radio][value={value}]")))
    driver.execute_script("arguments[0].click()", radio)
    wait(driver).until(lambda d: radio.is_selected())


def _type(driver, element, text: str) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.BACK_SPACE)
    element.send_keys(text)


def set_datetime(driver, picker, day: str, time_of_day: str = "00:00") -> None:
    """Set a date-time picker (day as YYYY/MM/DD) through its popover's date and time fields."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", picker)
    picker.click()
    popover = wait(driver).until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, "[data-part=content][data-state=open] input[placeholder='YYYY/MM/DD']")))
    _type(driver, popover, day)
    clock = driver.find_element(By.CSS_SELECTOR, "[data-part=content][data-state=open] input[placeholder='HH:mm']")
    _type(driver, clock, time_of_day)
    clock.send_keys(Keys.TAB)
    shown = day.replace("/", "-")
    picker.click()  # closes the popover
    wait(driver).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-part=content][data-state=open] "
                                                                      "input[placeholder='YYYY/MM/DD']"))
    return shown


def set_field(driver, name: str, value: str) -> None:
    """Type a run parameter into the trigger form, finding its input by the parameter's label."""
    named = driver.find_elements(By.CSS_SELECTOR, f"{DIALOG} [name=element_{name}]")
    if named:  # text fields carry the parameter's name
        field = named[0]
    else:  # number fields only their label's id
        label = driver.find_element(By.XPATH, f"{DIALOG_XPATH}//label[normalize-space(text())='{name}']")
        field = driver.find_element(By.ID, label.get_attribute("for"))
    _type(driver, field, value)
    field.send_keys(Keys.TAB)


def click_button(driver, text: str) -> None:
    """Click the dialog button with this text once it is enabled."""
    xpath = f"{DIALOG_XPATH}//button[normalize-space(.)='{text}']"
    button = wait(driver).until(EC.element_to_be_clickable((By.XPATH, xpath)))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()


def screenshot(driver, folder: Path, name: str) -> Path:
    """Save a PNG of the current page."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    try:
        driver.save_screenshot(str(path))
    except WebDriverException:
        pass
    return path
