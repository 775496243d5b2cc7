package org.acre.core;

import org.junit.internal.TextListener;
import org.junit.runner.JUnitCore;
import org.junit.runner.Result;
import org.junit.runner.notification.Failure;
import org.junit.runner.notification.RunListener;

/** JUnitCore over the given test classes, saying which tests were skipped (and why); exit 1 on failure. */
public final class RunTests {
    private RunTests() {}

    public static void main(String[] classNames) throws ClassNotFoundException {
        JUnitCore core = new JUnitCore();
        core.addListener(new TextListener(System.out));
        core.addListener(new RunListener() {
            @Override
            public void testAssumptionFailure(Failure failure) {
                System.out.println("\nskipped " + failure.getDescription().getDisplayName() + ": " + failure.getMessage());
            }
        });
        Class<?>[] classes = new Class<?>[classNames.length];
        for (int i = 0; i < classes.length; i++) classes[i] = Class.forName(classNames[i]);
        Result result = core.run(classes);
        System.out.println(result.getRunCount() + " tests run, " + result.getFailureCount() + " failed, "
                + result.getAssumptionFailureCount() + " skipped");
        System.exit(result.wasSuccessful() ? 0 : 1);
    }
}
